package model

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Diagnostics describe one maximum-likelihood fit.
type Diagnostics struct {
	// LogLikelihood is the total log-likelihood at the estimate.
	LogLikelihood float64 `json:"log_likelihood"`
	// Iterations and Evaluations count the optimiser's major iterations and
	// objective evaluations.
	Iterations  int `json:"iterations"`
	Evaluations int `json:"evaluations"`
	// Converged is true when the optimiser stopped on its gradient or
	// function-change criterion, not on an iteration limit or a failure.
	Converged bool `json:"converged"`
	// Status is the optimiser's stopping status.
	Status string `json:"status"`
	// Method is the optimiser that produced the estimate.
	Method string `json:"method"`
	// Members is the number of members fitted; Distinct the number of
	// distinct summaries the likelihood was evaluated on.
	Members  int `json:"members"`
	Distinct int `json:"distinct"`
	// StdErr holds each parameter's standard error by name, from the
	// inverse Hessian of the negative log-likelihood in log-parameters and
	// the delta method (SE(θ) = θ·SE(log θ)). Absent when the Hessian is
	// not positive definite or too ill-conditioned to invert; StdErrNote
	// then says why.
	StdErr     map[string]float64 `json:"std_err,omitempty"`
	StdErrNote string             `json:"std_err_note,omitempty"`
	// Condition is the estimated condition number of that Hessian (0 when
	// it could not be factorised).
	Condition float64 `json:"hessian_condition,omitempty"`
}

// maxCondition is the largest Hessian condition number for which standard
// errors are reported.
const maxCondition = 1e10

// objective is a negative log-likelihood per member in log-parameters θ;
// it fills grad when grad is not nil.
type objective func(theta, grad []float64) float64

// maximise minimises obj from start with BFGS and, if BFGS fails or stops
// short, continues with Nelder-Mead from the best point. n is the number of
// members obj averages over; names label the parameters.
func maximise(obj objective, start []float64, n float64, names []string) ([]float64, Diagnostics, error) {
	var evals int
	problem := optimize.Problem{
		Func: func(x []float64) float64 { evals++; return obj(x, nil) },
		Grad: func(grad, x []float64) { evals++; obj(x, grad) },
	}
	settings := &optimize.Settings{
		GradientThreshold: 1e-8,
		MajorIterations:   1000,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-13, Relative: 1e-13, Iterations: 20},
	}
	d := Diagnostics{Method: "BFGS"}
	res, err := optimize.Minimize(problem, start, settings, &optimize.BFGS{})
	if err != nil && res != nil && stalled(res) {
		// The line search cannot improve on a point whose gradient is
		// already at rounding level: that is convergence.
		err, res.Status = nil, optimize.GradientThreshold
	}
	if err != nil || !converged(res.Status) || !finite(res.F) {
		from := start
		if res != nil && finite(res.F) {
			from = res.X
		}
		d.Method = "BFGS, then Nelder-Mead"
		nm, nmErr := optimize.Minimize(optimize.Problem{Func: problem.Func}, from,
			&optimize.Settings{MajorIterations: 20000, Converger: &optimize.FunctionConverge{Absolute: 1e-13, Iterations: 200}},
			&optimize.NelderMead{})
		if nmErr != nil && (nm == nil || !finite(nm.F)) {
			return nil, d, fmt.Errorf("minimise negative log-likelihood: %w", errors.Join(err, nmErr))
		}
		if res == nil || !finite(res.F) || nm.F <= res.F {
			if res != nil {
				nm.MajorIterations += res.MajorIterations
			}
			res = nm
		}
	}
	if !finite(res.F) {
		return nil, d, errors.New("model: log-likelihood is not finite at the estimate")
	}
	d.LogLikelihood = -res.F * n
	d.Iterations = res.MajorIterations
	d.Evaluations = evals
	d.Status = res.Status.String()
	d.Converged = converged(res.Status)
	stdErrors(obj, res.X, n, names, &d)
	return res.X, d, nil
}

// stallGradient is the largest gradient (∞-norm, per member, in
// log-parameters) at which a failed line search counts as convergence.
const stallGradient = 1e-5

func stalled(res *optimize.Result) bool {
	if !finite(res.F) || len(res.Gradient) == 0 {
		return false
	}
	for _, g := range res.Gradient {
		if !(math.Abs(g) < stallGradient) {
			return false
		}
	}
	return true
}

func converged(s optimize.Status) bool {
	return s == optimize.GradientThreshold || s == optimize.FunctionConvergence ||
		s == optimize.FunctionThreshold || s == optimize.StepConvergence
}

// stdErrors fills d.StdErr from the Hessian of the total negative
// log-likelihood at θ, by central differences of the analytic gradient.
func stdErrors(obj objective, theta []float64, n float64, names []string, d *Diagnostics) {
	k := len(theta)
	h := mat.NewSymDense(k, nil)
	gp, gm := make([]float64, k), make([]float64, k)
	x := make([]float64, k)
	const step = 1e-4
	rows := make([][]float64, k)
	for i := range k {
		copy(x, theta)
		x[i] = theta[i] + step
		obj(x, gp)
		x[i] = theta[i] - step
		obj(x, gm)
		rows[i] = make([]float64, k)
		for j := range k {
			rows[i][j] = (gp[j] - gm[j]) / (2 * step) * n
		}
	}
	for i := range k {
		for j := i; j < k; j++ {
			h.SetSym(i, j, (rows[i][j]+rows[j][i])/2)
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(h) {
		d.StdErrNote = "Hessian not positive definite: no standard errors"
		return
	}
	d.Condition = chol.Cond()
	if !(d.Condition < maxCondition) {
		d.StdErrNote = fmt.Sprintf("Hessian ill-conditioned (condition %.3g): no standard errors", d.Condition)
		if math.IsInf(d.Condition, 0) {
			d.Condition = 0
		}
		return
	}
	var cov mat.SymDense
	if err := chol.InverseTo(&cov); err != nil {
		d.StdErrNote = "Hessian not invertible: no standard errors"
		return
	}
	d.StdErr = make(map[string]float64, k)
	for i, name := range names {
		d.StdErr[name] = math.Exp(theta[i]) * math.Sqrt(cov.At(i, i))
	}
}

// purchaseStart returns starting log-parameters for a purchase model: r = 1
// and α matching the mean purchase rate, a = 1, b = 3 (mean dropout 1/4).
func purchaseStart(s *rfmSet) []float64 {
	rate := max(s.sumX, 0.5) / s.sumT
	return []float64{0, math.Log(1 / rate), 0, math.Log(3)}
}

// FitBGNBD fits BG/NBD to the members by maximum likelihood. Identical
// summaries are folded first, so the cost grows with the distinct
// (x, tx, T) triples.
func FitBGNBD(data []RFM) (BGNBD, Diagnostics, error) {
	v, d, err := fitPurchase(data, false)
	if err != nil {
		return BGNBD{}, d, fmt.Errorf("fit BG/NBD: %w", err)
	}
	return BGNBD{R: v[0], Alpha: v[1], A: v[2], B: v[3]}, d, nil
}

// FitMBGNBD fits MBG/NBD to the members by maximum likelihood.
func FitMBGNBD(data []RFM) (MBGNBD, Diagnostics, error) {
	v, d, err := fitPurchase(data, true)
	if err != nil {
		return MBGNBD{}, d, fmt.Errorf("fit MBG/NBD: %w", err)
	}
	return MBGNBD{R: v[0], Alpha: v[1], A: v[2], B: v[3]}, d, nil
}

// ErrNoRepeat is returned when no member has a repeat transaction: the
// purchase models are not identified.
var ErrNoRepeat = errors.New("model: no member has a repeat transaction")

func fitPurchase(data []RFM, mod bool) ([4]float64, Diagnostics, error) {
	s, err := compress(data)
	if err != nil {
		return [4]float64{}, Diagnostics{}, err
	}
	if s.sumX == 0 {
		return [4]float64{}, Diagnostics{}, ErrNoRepeat
	}
	obj := func(theta, grad []float64) float64 { return negLogLik(s, mod, theta, grad) }
	theta, d, err := maximise(obj, purchaseStart(s), s.total, purchaseParamNames[:])
	d.Members, d.Distinct = int(s.total), len(s.w)
	if err != nil {
		return [4]float64{}, d, err
	}
	var v [4]float64
	for i := range v {
		v[i] = math.Exp(theta[i])
	}
	if err := checkParams("estimate", v); err != nil {
		return v, d, err
	}
	return v, d, nil
}
