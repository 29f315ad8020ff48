package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// barPair is one labelled pair of bars in a chart: skiff's figure and upstream's.
type barPair struct {
	Label           string
	Skiff, Upstream *float64
}

// writeCharts writes throughput.svg (ops/s), latency-p99.svg (log scale) and rss.svg.
func (r *APIReport) writeCharts(dir string) error {
	var ops, p99, rss []barPair
	for _, c := range r.Comparisons() {
		label := c.Step + " " + c.Workload
		if c.Clients > 0 {
			label += fmt.Sprintf(" x%d", c.Clients)
		}
		if c.Variant != "" {
			label += " (" + c.Variant + ")"
		}
		get := func(f func(*APIResult) *float64) barPair {
			b := barPair{Label: label}
			if c.Skiff != nil && c.Skiff.Error == "" {
				b.Skiff = f(c.Skiff)
			}
			if c.Upstream != nil && c.Upstream.Error == "" {
				b.Upstream = f(c.Upstream)
			}
			return b
		}
		if b := get(func(r *APIResult) *float64 { return r.OpsPerSec }); b.Skiff != nil || b.Upstream != nil {
			ops = append(ops, b)
		}
		if b := get(func(r *APIResult) *float64 { return r.P99 }); b.Skiff != nil || b.Upstream != nil {
			p99 = append(p99, b)
		}
		if b := get(func(r *APIResult) *float64 { return r.RSSMB }); b.Skiff != nil || b.Upstream != nil {
			rss = append(rss, b)
		}
	}
	for _, ch := range []struct {
		file, title string
		bars        []barPair
		log         bool
	}{
		{"throughput.svg", "throughput, ops/s (pods/s for schedule rows): higher is better", ops, false},
		{"latency-p99.svg", "p99 latency, ms, log scale: lower is better", p99, true},
		{"rss.svg", "summed peak RSS of the control plane, MB: lower is better", rss, false},
	} {
		f, err := os.Create(filepath.Join(dir, ch.file))
		if err != nil {
			return err
		}
		werr := writeBarChartSVG(f, ch.title, ch.bars, ch.log)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	return nil
}

// writeBarChartSVG draws horizontal bar pairs (skiff blue, upstream orange), each with its
// value, on a linear or logarithmic axis: a plain SVG a browser opens from disk.
func writeBarChartSVG(w io.Writer, title string, bars []barPair, logScale bool) error {
	const width, labelW, right, top, rowH, barH = 1000.0, 330.0, 90.0, 50.0, 30.0, 12.0
	height := top + rowH*float64(max(len(bars), 1)) + 20
	maxV, minV := 1.0, math.Inf(1)
	for _, b := range bars {
		for _, v := range []*float64{b.Skiff, b.Upstream} {
			if v != nil && *v > 0 {
				maxV, minV = max(maxV, *v), min(minV, *v)
			}
		}
	}
	lo := 0.0
	if logScale {
		lo = math.Floor(math.Log10(max(min(minV, maxV), 1e-3)))
	}
	plotW := width - labelW - right
	x := func(v float64) float64 {
		if !logScale {
			return plotW * v / maxV
		}
		hi := math.Ceil(math.Log10(maxV))
		if hi <= lo {
			hi = lo + 1
		}
		return plotW * max(math.Log10(max(v, 1e-9))-lo, 0) / (hi - lo)
	}
	var sb strings.Builder
	pf := func(format string, a ...any) { fmt.Fprintf(&sb, format, a...) }
	pf(`<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	pf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	pf(`<text x="10" y="18" font-size="13">%s</text>`+"\n", html.EscapeString(title))
	pf(`<rect x="10" y="28" width="10" height="10" fill="#1f77b4"/><text x="24" y="37">skiff</text>`)
	pf(`<rect x="70" y="28" width="10" height="10" fill="#ff7f0e"/><text x="84" y="37">upstream Kubernetes</text>` + "\n")
	for i, b := range bars {
		y := top + rowH*float64(i)
		pf(`<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", labelW-6, y+barH+3, html.EscapeString(b.Label))
		for j, v := range []*float64{b.Skiff, b.Upstream} {
			by := y + float64(j)*barH
			color := []string{"#1f77b4", "#ff7f0e"}[j]
			if v == nil {
				pf(`<text x="%.0f" y="%.1f" fill="#888">no figure</text>`+"\n", labelW+2, by+barH-2)
				continue
			}
			bw := x(*v)
			pf(`<rect x="%.0f" y="%.1f" width="%.1f" height="%.0f" fill="%s"/>`+"\n", labelW, by, max(bw, 1), barH-1, color)
			pf(`<text x="%.1f" y="%.1f">%s</text>`+"\n", labelW+max(bw, 1)+4, by+barH-2, fmtFigure(*v))
		}
	}
	pf(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`+"\n", labelW, top-4, labelW, height-16)
	pf("</svg>\n")
	_, err := io.WriteString(w, sb.String())
	return err
}

func fmtFigure(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
