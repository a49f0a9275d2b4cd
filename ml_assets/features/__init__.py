"""The features stage: the training window of labelled examples, its split, and its gates."""
