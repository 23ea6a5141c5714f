"""The package as a whole: layers, portability, what a wheel installs."""
