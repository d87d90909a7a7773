//go:build race

package replay

// raceEnabled: the race detector slows the engine ~10×, so the property
// tests use a smaller generated input.
const raceEnabled = true
