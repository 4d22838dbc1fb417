"""Task-authorised man-in-the-middle functions (study 2.3.1 case B/D, 2.3.2, 2.3.3)."""
