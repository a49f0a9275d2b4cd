"""The delivery stage: the staging and production aliases and the approval that moves them."""
