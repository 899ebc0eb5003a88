"""What a valid request is, and what it becomes: the request's schema and cross-field rules,
the request parsed once into its model (paths, samples and their ids) that every later step
reads, the substep option strings as CNVkit's own parsers read them, the problems found, and
the Nextflow params of a valid request.

The ground floor of the package: it imports only `cnvkit_nf.pipeline_files` (the schema and the
rules of `bin/` that the pipeline's tasks share) and never another subpackage.
"""
