// The training job's commands arrive with the sequence-model issue (train, evaluate, publish).
// Until then it says so rather than pretending to train.
Console.Error.WriteLine("training-job: no commands yet (train/evaluate/publish come with the sequence model).");
return 2;
