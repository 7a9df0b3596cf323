//go:build tools

// The package built from this module: the Pulumi CLI.
package engine

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
