"""The backend service: the ZeroMQ server, the broker in front of worker processes, jobs, batching and security."""
