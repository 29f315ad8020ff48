package apiserver

import (
	"bytes"
	"fmt"
	"mime"
	"net/http"
	"strings"

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
	// table is set when the client asked for meta.k8s.io Table (kubectl get);
	// partial when it asked for PartialObjectMetadata(List).
	table, partial bool
}

// negotiate picks the response serializer from Accept, as kube-apiserver does: JSON unless
// the client prefers YAML or protobuf, and the Table/PartialObjectMetadata conversions
// when asked with the as= parameter.
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
		as := clause.Params["as"]
		switch as {
		case "", "Table", "PartialObjectMetadata", "PartialObjectMetadataList":
		default:
			continue
		}
		if as != "" && clause.Params["g"] != "meta.k8s.io" {
			continue
		}
		if as != "" && clause.Params["v"] != "v1" && clause.Params["v"] != "v1beta1" {
			continue
		}
		for _, info := range supported {
			if info.MediaType == typ {
				return mediaType{info: info, table: as == "Table", partial: strings.HasPrefix(as, "PartialObjectMetadata")}, nil
			}
		}
	}
	return mediaType{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", "only application/json, application/yaml and application/vnd.kubernetes.protobuf are supported", 0, false)
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
