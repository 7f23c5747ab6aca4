"""The HTTP layer: parse, authorise, call one SQL function, shape the response."""
