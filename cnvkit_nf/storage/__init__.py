"""Where a job's files are read and written: object storage (`objects`, boto3), local folders
opened only inside allowed roots (`confined`), result manifests (`manifest`) and publishing a
finished result into a local folder (`publish_local`).

May import `contract` and `cnvkit_nf.pipeline_files`; never launch, service or the faces.
"""
