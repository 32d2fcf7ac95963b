using Recommender.TrainingJob;

// training-job <command> [options]; training-job <command> --help lists a command's options (TrainingJobCommand).
return await CommandOptions.RunAsync(TrainingJobCommand.Create(), args);
