"""Mail authentication pieces shared by stages: the caching DNS resolver and Authentication-Results headers."""
