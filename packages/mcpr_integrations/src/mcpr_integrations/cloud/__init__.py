"""The hosted side of mcpr: the `[cloud]` config, the event upload and the cloud API.

* `mcpr_integrations.cloud.config`: the `[cloud]` table of `mcpr.toml` (`load_cloud_config`).
* `mcpr_integrations.cloud.sink`: `CloudSink`, batches of events POSTed from a worker thread.
* `mcpr_integrations.cloud.api`: `CloudClient`, login by email code, projects, servers, tokens.

Only the config is re-exported here: the other two import `requests`, which commands that
never talk to the cloud should not pay for.
"""

from mcpr_integrations.cloud.config import CloudConfig, load_cloud_config

__all__ = ["CloudConfig", "load_cloud_config"]
