"""What the job system keeps on disk: the durable job records (`jobs`: one row per job, moved
only through named transitions), where every file of a state dir and of a run folder lies
(`layout`), and the state dir's locks (`locks`).

May import `contract`; nothing of launch, service or the faces.
"""
