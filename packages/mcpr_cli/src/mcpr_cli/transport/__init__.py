"""The anyio + h11 transport: client connections in, a keep-alive pool to the upstream out."""
