"""What the job system keeps on disk: the durable job records (`jobs`: one row per job, moved
only through named transitions), and where every file of a state dir and of a run folder lies
(`layout`).

May import `contract`; nothing of launch, service or the faces.
"""
