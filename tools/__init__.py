"""What talks to the engine from outside, over HTTP: the device simulator."""
