"""Live mode: the same actors over real ZeroMQ sockets in wall-clock time."""
