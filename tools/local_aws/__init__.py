"""A local AWS for the pipeline: moto in-process, Lambda functions as local processes."""
