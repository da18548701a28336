"""An ordinary Lightning project (no hpsearch imports): a folder of PNG images and a small CNN."""
