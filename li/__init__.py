"""The lawful-interception side: X1, X2/X3, POIs, LEMF and task-authorised MITM functions."""
