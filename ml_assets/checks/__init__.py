"""Asset checks: data gates (data_checks) and model gates (model_gates)."""
