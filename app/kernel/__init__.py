"""The shared kernel: what the write side, the read side and the projectors all use.

- `positions`: the log's order (checkpoints, the reader's horizon, log identity) and its
  notification channels;
- `readmodels`: read-model naming (index alias and concrete indices, dashboard keys and
  generations);
- `pool`: the PostgreSQL pool and the one list of "PostgreSQL is down" errors;
- `locks`: the advisory-lock keys;
- `reindex_jobs`: rebuild jobs as rows;
- `settings`, `runtime`: one validated configuration, process tuning.

It imports the domain and the drivers, never `app.read`, `app.write` or `projectors`.
"""
