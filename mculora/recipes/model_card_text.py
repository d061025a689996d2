"""The model card's text around its tables: `mculora.recipes.model_card` fills the fields from metrics.json."""

TEMPLATE = """\
# {title} (Ekman-7, offline encoders)

{intro}.
It was trained on real, public emotion corpora with the **offline** encoders: all-MiniLM-L6-v2 with its top layers
fine-tuned here for emotion; a torchaudio acoustic descriptor joined to a speech CNN trained here on RAVDESS +
EmoDB; and for faces a mediapipe face-mesh geometry descriptor joined to a facial-expression CNN trained here on
FER-2013.
Labels: anger, disgust, fear, happiness, neutral, sadness, surprise.
Reproduce with `{command}`;
every number below comes from `metrics.json`, which that command writes.

**Not for decisions about people.** It scores how an expression, a voice or a sentence *looks like* the acted or
annotated examples it learned from; it does not read anyone's feelings.

## Data and terms

| modality | corpora | licence / terms |
|---|---|---|
| text | GoEmotions (Reddit; single-label rows) | Apache-2.0 |
| text | MELD (Friends dialogue) train/dev | research use (repository GPL-3.0) |
| speech | RAVDESS speech (actors 01-22, acted English) | CC BY-NC-SA 4.0 |
| speech | EmoDB (acted German) | free for research |
| face | FER-2013 (48×48 grayscale web images) | no explicit licence: research use only |
| paired benchmark | RAVDESS audio + OpenFace action units | CC BY-NC-SA 4.0 (derivative) |

Because of these terms, use the checkpoint for research and demonstration, **non-commercially**. The weights contain
no data, but they were learned from it.

**Label mapping.**
- joy → happiness.
- RAVDESS *calm* → neutral: a calm delivery of the same neutral sentences.
- EmoDB *boredom* is dropped: it has no Ekman counterpart.
- GoEmotions multi-label rows are dropped.

**Splits** keep speakers, actors and sources apart; no test item is used for training or selection.

| corpus | train | validation | test |
|---|---|---|---|
| GoEmotions | train | dev | test |
| MELD | train, 90 % of dialogues | train, 10 % of dialogues | dev |
| RAVDESS | actors 01-16 | actors 17-18 | actors 19-22 |
| EmoDB | speakers 03, 09, 10, 13, 14 | speaker 11 | speakers 08, 12 |
| FER-2013 | Training, 90 % | Training, 10 % | PublicTest |

FER-2013 has no subject ids, so its exact pixel duplicates are kept out of test. Its blank images are dropped.
Items with a usable feature:

{data}

## Encoders

{encoders}

The face network (`face_net.safetensors`, loaded by the vision encoder from this folder) is a VGG-style CNN over
48×48 grayscale faces, trained by `mculora.recipes.face` on the crops the run-time path cuts from {face_images}
FER-2013 training images (the face mesh, then the network's framing: what it sees in the demo), with what a webcam
does to a face on top (exposure, contrast, gamma, a face a few dozen pixels wide, noise, JPEG), for {face_epochs}
epochs ({face_minutes} min): validation accuracy {face_val} %, **PublicTest accuracy {face_test} %** on its own
(the path crops of the test faces the mesh finds, averaged with their mirror images). The vision encoder feeds
MCULoRA the geometry descriptor, the network's pooled features and its logits.

The text network (`text_net.safetensors`, loaded by the text encoder from this folder) is the packaged
all-MiniLM-L6-v2 with its top two transformer layers and a 7-way head fine-tuned by `mculora.recipes.text` on
{text_texts} GoEmotions + MELD training texts for {text_epochs} epochs ({text_minutes} min): validation macro-F1
{text_val} %, **test macro-F1 {text_test} %** on its own (GoEmotions test + MELD dev, trained with 1/√frequency class
weights). The text encoder feeds the model the fine-tuned sentence embedding and the head's logits.

The speech network (`speech_net.safetensors`, loaded by the audio encoder from this folder) is a small CNN over
64-band log-mel spectrograms, trained by `mculora.recipes.speech` on {speech_clips} RAVDESS + EmoDB training clips,
each also as {speech_variants} copies under browser and phone conditions (`mculora.recipes.speech_augment`: gain and
clipping, reverberation, noise at 0-20 dB SNR, band limits, low-bitrate Opus/AAC/MP3, silence), for {speech_epochs}
epochs ({speech_minutes} min): RAVDESS validation accuracy {speech_val} %, **test accuracy
{speech_test} % on RAVDESS actors 19-22** and {speech_test_emodb} % on EmoDB speakers 08/12, on its own. The audio
encoder feeds the model the acoustic descriptor, the network's pooled features and its logits.

## How it was trained: synthetic pairing

**The pairing is synthetic.** The corpora were not recorded together. Each training sample joins one text, one
speech clip and one face that share a label, drawn afresh every batch with class-balanced labels, with Gaussian
noise of {feature_noise} times each feature's training spread added to the descriptors and embeddings (not to the
encoder networks' logits; without it the model fitted the pools' exact vectors within the first
epoch).{session_training}
{method_training}

The model therefore learned how the modalities agree *on a label*, not how one real person's face, voice and words go
together. The genuinely paired benchmark below is the real check of that.

**Training settings.**
- Model: {model}
- DPFT: {dpft}
- Optimiser: {optimizer}
- Recipe: {recipe}
- {kept_weights}
- Parameters: {parameters}.
- Time, on {machine}: {seconds} min for this run of the recipe, of which {encoder_minutes} min went on the encoder
  networks (a network trained by an earlier run with the same settings is reused; the served ones' training took:
  face {face_minutes} min, text {text_minutes} min, speech {speech_minutes} min; the fold networks' {fold_minutes}
  min), {extraction} min on feature extraction and {training_minutes} min on training {name}. Building the feature
  cache from scratch took {extraction_cumulative} min in all, over the runs that built it, besides
  {crop_minutes} min for the face-mesh pass over the face images.
- **Cross-fitted features** (`mculora.recipes.cross_fitting`): the training items are split into {folds} folds by
  speaker, actor, dialogue, comment or image; each fold's items get their features from encoder networks trained
  without them ({fold_epoch_scale:.0%} of the served networks' epochs), so the model learns from features as
  imperfect as a new person's. The served networks learned from all training items; validation and test items are
  unseen by every network. Networks trained apart learn different features, so each fold's outputs are mapped
  onto the served networks' (a ridge regression fitted on training items both learned from; the hand-built
  descriptors pass through): the median per-feature correlation with the served networks' outputs, on items held
  back from the fit, as trained and stitched:

{stitches}

  Accuracy on training items (out of fold, stitched) beside validation items:

{cross_fitting}

{adapter_section}## Test results per modality combination

**Label-paired test samples:** the same number of samples for each label, built from the test splits. The table
gives accuracy, macro-F1 and per-class recall, in %.

{summary}

![confusion matrices]({figure})

**Each modality alone on its own natural test set** (real class distribution):

{unimodal}

**Calibration.** The probabilities the demo shows are temperature-scaled: each combination's logits are divided by a
temperature fitted on validation pairs (minimum negative log-likelihood): speakers, dialogues and images no network
trained on, each pair once as it is and once with its voice moved by a session of the speaker's other clips (as the
page serves people with and without a profile), and pairs whose voice is a validation speaker of the corpus a
leave-one-corpus-out network never heard (below). The confidence shown comes closer to how often the model is
right; the predicted class does not change. Expected calibration error (ECE, 15 equal-width confidence bins: the
average gap between confidence and accuracy) and negative log-likelihood on the paired test samples, before and
after, and the ECE after with each test voice moved by a session of its speaker:

{calibration}

## Generalisation

**Collapse check.** A model that gives one class to most inputs of a kind it never saw is useless there, whatever its
accuracy elsewhere. On a class-balanced draw of each modality's test items, and on the (balanced) test pairs under
each combination, no class may take more than 35 % of the predictions:

{collapse}

**Speech on a corpus it never heard.** The speech network trained (same recipe, augmented copies included) on one
acted corpus and tested on every clip of the other, on the six classes both have (chance 16.7 %), clean and after an
Opus 16 kbit/s round trip (a WebRTC microphone's codec), by `mculora.recipes.speech_transfer`. ECE is given raw and,
in brackets, after a temperature fitted on the source corpus's validation speakers: whether calibration carries
over to a corpus never heard.

{transfer}

**The fused model on a corpus it never heard.** Each leave-one-corpus-out network's outputs on the other corpus's
test speakers, mapped onto the served speech network's coordinates (fitted on the clips both learned from), joined
with test texts and faces of the same label (the six shared classes, {pairs_per_label} pairs each): the served
model and its temperatures on speech from an unseen corpus (`mculora.recipes.unseen_corpus`), as it is and with
each voice moved by a session of 16 to 48 of its speaker's other clips (`mculora.recipes.speaker_sessions`):

{unseen_corpus}

Faces have no second corpus here (FER-2013 only), so the face network's unseen-data figures are its PublicTest ones.

**Reading one person** (`mculora.person`, `mculora.recipes.person_adaptation`). A person profile moves a person's
vectors so that their statistics land on the training people's: by a calm enrolment (faces: the person's neutral
face onto the training people's; voices are not moved by it) and, from 16 of the person's inputs on, by the
statistics of their session. Each person the networks never trained on is tested alone: 5 enrolments of 4 of their
calm recordings, their other recordings scored without a profile, with their enrolment, with another person's, and
with a session of 16 of their other recordings (scored on the rest). Voices: the RAVDESS and EmoDB validation and test
speakers. Faces: FER-2013 has no identities, so the face rule is measured on the paired benchmark's facial action
units of the actors its first fold never trained on. Accuracy and macro-F1 on class-balanced draws; ECE after the
checkpoint's temperature (voice) or none (action units):

{person}

**When two modalities disagree.** On the test pairs where one modality alone is right and the other wrong, how often
the pair's prediction takes the right member's label, and how often the wrong member's (the rest: a third label):

{disagreement}

**The IEMOCAP-4 label subset** (anger, happiness, neutral, sadness; prediction restricted to these four), on the same
paired test samples:

{iemocap4}

## Genuinely paired benchmark: RAVDESS speech + facial action units

RAVDESS's speech clips paired with the action units (17 intensities + 18 presences, clip-level OpenFace statistics)
of the *same* performances. Text is absent: RAVDESS's two fixed sentences carry no emotion.

There are {au_clips} clips. The folds are speaker-independent, with actors grouped by (actor − 1) mod 5: each fold
tests on unseen actors and selects on another group. The checkpoint is its own small one (hidden 64, depth 2), in
`ravdess_au/`, because its visual input is not the demo's face descriptor. Results are mean ± std over the 5 folds:

{ravdess}

## Limits
- The speech is acted (RAVDESS, EmoDB): exaggerated compared with everyday speech, in two fixed English sentences
  and German. It is not conversational.
- The text is Reddit comments and TV-sitcom lines. Sarcasm, context and other languages are out of scope.
- The faces are 48×48 grayscale web images (FER-2013, with label noise: human accuracy is about 65 %). The face
  network sees grayscale only: no colour.
- The pairing is synthetic (see above). Fused scores assume the modalities express one emotion.
- Scores reflect resemblance to annotated or acted examples. They say nothing about what a person feels. Do not use
  them for hiring, policing, health, education or any decision about people.
"""

ADAPTER_HEALTH = """\
## Adapter health

MCLA only works if every combination's adapters learn. Measured on the validation pairs with
`python -m mculora.training.adapter_health` (its `adapter_health`): for each combination, one backward pass of the loss
on inputs with only that combination's modalities; each layer's routed combination adapter's gradient norm divided by
the shared adapter's in the same layer. Below 1e-3 an adapter counts as dead. **Dead adapters: {dead}.**

*Separability* is DPFT's divergence between the shared and the combination representation of the same input;
*distinctness* is how much one input's combination representation differs between this combination and the others
that share a modality with it (relative distance; 0 would mean the combinations compute the same thing).

{adapter_health}

"""
