"""The retraining stage: the jobs automation requests, and the sensors and schedule that do."""
