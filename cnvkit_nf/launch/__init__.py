"""From a checked request to a finished run: the input check (`local_files`), the private input
store, finding or installing Nextflow, running and supervising one job's Nextflow (`runner`,
`supervise`), and a job's whole path from plan to published results (`submission`), shared by
`cnvkit-nf run` and the job service.

May import `contract`, `state`, `storage` and `reference`; never `service` or the CLI.
"""
