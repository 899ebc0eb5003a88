"""What the job system keeps on disk: the durable job records (`jobs`: one row per job, moved
only through named transitions).

May import `contract`; nothing of launch, service or the faces.
"""
