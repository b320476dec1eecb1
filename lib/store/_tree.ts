/** The pieces of Nix's tree drawings (`nix-store -q --tree`, `nix why-depends`). */

/** A child that has siblings after it. */
export const TREE_CONN = "├───";
/** The last child. */
export const TREE_LAST = "└───";
/** Under a child that has siblings after it. */
export const TREE_LINE = "│   ";
/** Under the last child. */
export const TREE_NULL = "    ";
