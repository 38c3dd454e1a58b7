"""Drive agents through a protocol: the LangGraph consensus graph, scenarios, the runner, durable runs,
the run summary and offline certificate checks."""
