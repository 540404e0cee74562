// Package controller sets up every controller of the redishttp provider.
package controller
