// Package contract holds the names the composition function, the ApiKey
// provider and the HTTP gateway agree on: what the function composes for an
// instance, what the provider reads back, and what apps find in connection
// Secrets. A name changes here or nowhere, so a rename is a compile-time
// change to every side instead of a failure only the end-to-end test sees.
package contract
