// The version of jigsaw and the git commit it was built from ("0.1.0 (a1b2c3d4e5f6)"; "-dirty" when the tree
// had changes), as every tool's --version prints it and every store, checkpoint and forecast records it.
#pragma once

namespace jigsaw {

const char* Version();

}  // namespace jigsaw
