"""File blobs on disk (store), and the orphan sweeper role (sweeper)."""
