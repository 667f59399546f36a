"""The lab's server: TCP echo, UDP echo, greeting and framed-app listeners in one selectors loop."""
