package apikey

import (
	"context"

	"github.com/ai-decenter/redishttp/apis/v1alpha1"

	"github.com/crossplane/crossplane-runtime/v2/pkg/errors"
	"github.com/crossplane/crossplane-runtime/v2/pkg/reconciler/managed"
)

// noRedis is the external client of an ApiKey being deleted whose Redis is
// gone. It reports that the user does not exist, so deletion completes.
type noRedis struct{}

func (noRedis) Observe(context.Context, *v1alpha1.ApiKey) (managed.ExternalObservation, error) {
	return managed.ExternalObservation{ResourceExists: false}, nil
}

func (noRedis) Create(context.Context, *v1alpha1.ApiKey) (managed.ExternalCreation, error) {
	return managed.ExternalCreation{}, errors.New("cannot create an ACL user in a Redis that is gone")
}

func (noRedis) Update(context.Context, *v1alpha1.ApiKey) (managed.ExternalUpdate, error) {
	return managed.ExternalUpdate{}, errors.New("cannot update an ACL user in a Redis that is gone")
}

func (noRedis) Delete(context.Context, *v1alpha1.ApiKey) (managed.ExternalDelete, error) {
	return managed.ExternalDelete{}, nil
}

func (noRedis) Disconnect(context.Context) error { return nil }
