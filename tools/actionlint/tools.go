//go:build tools

// The package built from this module: actionlint.
package actionlint

import _ "github.com/rhysd/actionlint/cmd/actionlint"
