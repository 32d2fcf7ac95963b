using Recommender.Experiments;
using Recommender.TrainingJob;

// experiments rl|meta [options]; experiments <command> --help lists a command's options (ExperimentsCommand).
return await CommandOptions.RunAsync(ExperimentsCommand.Create(), args);
