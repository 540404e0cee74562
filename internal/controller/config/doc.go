// Package config reconciles ProviderConfigs and ClusterProviderConfigs: it
// counts the ApiKeys using each one and blocks its deletion while it is used.
package config
