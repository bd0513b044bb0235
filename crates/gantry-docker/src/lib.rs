//! Gantry backend over the Docker Engine API.
