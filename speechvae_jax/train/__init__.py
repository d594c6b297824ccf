"""The VAE trainer: its state and optimisers, the generator loss table, the update kinds, and the Task it
hands the training engine (`train.task.train_and_evaluate`)."""
