"""Training in its own process: a :class:`~recsys.jobs.manager.JobManager` queues jobs and
starts one worker process per job (``python -m recsys.jobs.worker JOB_DIR``, ``worker``), which
trains, saves the run and computes its maps, reporting progress through files the app reads."""
