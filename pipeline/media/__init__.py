"""Image bytes: header checks, decode and resize (img2dataset's Resizer), and the picture renderer shared by demo and textness probe."""
