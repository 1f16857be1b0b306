"""livedesk's processes: the pipeline stages, the command line and what they share."""
