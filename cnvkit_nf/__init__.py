"""Run CNVkit jobs described by one JSON request on a Nextflow pipeline."""
