package apiserver

import (
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nameRules says how a kind's names are validated; DNS-1123 subdomain unless listed.
var nameRules = map[string]apivalidation.ValidateNameFunc{
	"namespaces":      apivalidation.NameIsDNSLabel,
	"services":        apivalidation.NameIsDNS1035Label,
	"serviceaccounts": apivalidation.NameIsDNSSubdomain,
}

// validate checks metadata as Kubernetes does (name format, labels, annotations, immutable
// fields on update) and then the registration's own rules.
func (s *Server) validate(rs *Resource, obj, old runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	nameFn, ok := nameRules[rs.GVR.Resource]
	if !ok {
		nameFn = apivalidation.NameIsDNSSubdomain
	}
	if rs.GVR.Group == "rbac.authorization.k8s.io" {
		nameFn = validatePathSegment // RBAC names may contain ':' (system:node)
	}
	var errs field.ErrorList
	if old == nil {
		errs = apivalidation.ValidateObjectMetaAccessor(m, rs.Namespaced, nameFn, field.NewPath("metadata"))
	} else {
		om, _ := meta.Accessor(old)
		errs = apivalidation.ValidateObjectMetaAccessorUpdate(m, om, field.NewPath("metadata"))
		errs = append(errs, apivalidation.ValidateObjectMetaAccessor(m, rs.Namespaced, nameFn, field.NewPath("metadata"))...)
	}
	if rs.Validate != nil {
		errs = append(errs, rs.Validate(obj, old)...)
	}
	return errs
}

func validatePathSegment(name string, prefix bool) []string {
	return path.IsValidPathSegmentName(name)
}
