//! Argument parsing shared by command families, with Redis's error texts.
