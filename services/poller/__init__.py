"""The poller stage: fetch feeds, parse them at one boundary, publish new and edited entries on `raw`."""
