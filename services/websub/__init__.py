"""WebSub push (W3C WebSub): subscribe to the hubs feeds advertise and take their pushes through the poller's path."""
