package apiserver

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"

	"github.com/munnerz/goautoneg"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// codecs bundles the scheme and the serializers built from it. It is built once per Server:
// no package-level mutable state.
type codecs struct {
	scheme  *runtime.Scheme
	factory serializer.CodecFactory
	strict  serializer.CodecFactory // rejects unknown and duplicate fields
	storage *protobuf.Serializer
	params  runtime.ParameterCodec
}

func newCodecs() (*codecs, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := metav1.AddMetaToScheme(s); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion)
	return &codecs{
		scheme:  s,
		factory: serializer.NewCodecFactory(s),
		strict:  serializer.NewCodecFactory(s, serializer.EnableStrict),
		storage: protobuf.NewSerializer(s, s),
		params:  runtime.NewParameterCodec(s),
	}, nil
}

// gvkOf fills in an object's apiVersion and kind from the scheme.
func (c *codecs) gvkOf(obj runtime.Object) (schema.GroupVersionKind, error) {
	gvks, _, err := c.scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionKind{}, err
	}
	return gvks[0], nil
}

func (c *codecs) setKind(obj runtime.Object) {
	if gvk, err := c.gvkOf(obj); err == nil {
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
}

// encodeStorage is the stored form of an object: protobuf, without resourceVersion.
func (c *codecs) encodeStorage(obj runtime.Object) ([]byte, error) {
	c.setKind(obj)
	var buf bytes.Buffer
	if err := c.storage.Encode(obj, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *codecs) decodeStorage(data []byte) (runtime.Object, error) {
	obj, _, err := c.storage.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	return obj, nil
}

// mediaType is a negotiated response format.
type mediaType struct {
	info runtime.SerializerInfo
	// as is the conversion the client asked for with as=, g= and v= (Table,
	// PartialObjectMetadata or PartialObjectMetadataList in meta.k8s.io v1 or v1beta1);
	// zero for the object itself.
	as schema.GroupVersionKind
	// table is set for as=Table (kubectl get); partial for either PartialObjectMetadata kind.
	table, partial bool
}

const (
	kindPartial     = "PartialObjectMetadata"
	kindPartialList = "PartialObjectMetadataList"
)

// acceptedTypes is kube-apiserver's message when no Accept clause can be served.
const acceptedTypes = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"

// errNotAcceptable is kube-apiserver's 406 (its negotiation.errNotAcceptable).
func errNotAcceptable(msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure,
		Code: http.StatusNotAcceptable, Reason: metav1.StatusReasonNotAcceptable, Message: msg}}
}

// negotiate picks the response serializer from Accept as kube-apiserver's
// NegotiateOutputMediaType does: the first clause, in the client's order of preference,
// that names a supported media type with a conversion this server can make; 406 when
// none does. A clause with an unknown as= (or g=, v=) is skipped, so a client can put a
// plain type after it as a fallback.
func (c *codecs) negotiate(r *http.Request) (mediaType, error) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "application/json"
	}
	supported := c.factory.SupportedMediaTypes()
	for _, clause := range goautoneg.ParseAccept(accept) {
		typ := clause.Type + "/" + clause.SubType
		if clause.Type == "*" || clause.SubType == "*" {
			typ = "application/json"
		}
		for _, info := range supported {
			if info.MediaType != typ {
				continue
			}
			if mt, ok := acceptClause(clause.Params, info); ok {
				return mt, nil
			}
		}
	}
	return mediaType{}, errNotAcceptable(acceptedTypes)
}

// acceptClause is upstream's acceptMediaTypeOptions with the apiserver's
// AllowsMediaTypeTransform: Table only as JSON or YAML, PartialObjectMetadata(List) in
// every serialization, nothing else.
func acceptClause(params map[string]string, info runtime.SerializerInfo) (mediaType, bool) {
	mt := mediaType{info: info}
	if v := params["stream"]; v != "" && (v != "watch" || info.StreamSerializer == nil) {
		return mt, false
	}
	as, g, v := params["as"], params["g"], params["v"]
	if as == "" && g == "" && v == "" {
		return mt, true
	}
	if g != metav1.GroupName || (v != "v1" && v != "v1beta1") {
		return mt, false
	}
	switch as {
	case "Table":
		if info.MediaType != runtime.ContentTypeJSON && info.MediaType != runtime.ContentTypeYAML {
			return mt, false
		}
		mt.table = true
	case kindPartial, kindPartialList:
		mt.partial = true
	default:
		return mt, false
	}
	mt.as = schema.GroupVersionKind{Group: g, Version: v, Kind: as}
	return mt, true
}

// bodyDecoder picks the request body's decoder from Content-Type (415 when unknown).
// strict rejects unknown fields (fieldValidation=Strict).
func (c *codecs) bodyDecoder(r *http.Request, strict bool) (runtime.Decoder, error) {
	ct := r.Header.Get("Content-Type")
	mt := "application/json"
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, unsupportedMediaType(ct)
		}
	}
	for _, info := range c.factory.SupportedMediaTypes() {
		if info.MediaType != mt {
			continue
		}
		if strict && info.StrictSerializer != nil {
			return info.StrictSerializer, nil
		}
		return info.Serializer, nil
	}
	return nil, unsupportedMediaType(ct)
}

// coreV1 is the group-version whose registered conversions decode query parameters into
// ListOptions, GetOptions, DeleteOptions and TableOptions.
var coreV1 = schema.GroupVersion{Version: "v1"}
