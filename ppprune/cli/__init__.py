"""The command-line tools (`tools/*.py` are thin wrappers over these modules' `main`)."""
