"""Command lines: `make run` and `make promote`, schema inference, the instance set-up."""
