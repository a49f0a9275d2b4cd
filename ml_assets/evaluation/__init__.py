"""The evaluation stage: the evidence on the candidate and the nine gates that judge it."""
