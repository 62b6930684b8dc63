"""`kinns trace`: a real probe followed hop by hop through what the kernel did."""
