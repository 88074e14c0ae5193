"""Train a Keras network on MNIST (the keras-mnist-hyperdrive walkthrough's training script).

Logs Loss and Accuracy (on the test set) after every epoch — HyperDrive's BanditPolicy compares trials on Accuracy —
then Final test loss / Final test accuracy, and the loss curve as an image. Saves outputs/model/model.keras.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tensorflow import keras

from runyard import Run
from utils import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument('--data-folder', type=str, dest='data_folder')
parser.add_argument('--batch-size', type=int, dest='batch_size', default=50)
parser.add_argument('--first-layer-neurons', type=int, dest='n_hidden_1', default=100)
parser.add_argument('--second-layer-neurons', type=int, dest='n_hidden_2', default=100)
parser.add_argument('--learning-rate', type=float, dest='learning_rate', default=0.001)
parser.add_argument('--epochs', type=int, dest='n_epochs', default=20)
args = parser.parse_args()

X_train, y_train, X_test, y_test = load_mnist(args.data_folder)
y_train_1h, y_test_1h = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
print(f'{len(X_train)} training and {len(X_test)} test images', flush=True)

run = Run.get_context()
keras.utils.set_random_seed(1)
model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(args.n_hidden_1, activation='relu'),
    keras.layers.Dense(args.n_hidden_2, activation='relu'),
    keras.layers.Dense(10, activation='softmax'),
])
model.compile(loss='categorical_crossentropy', optimizer=keras.optimizers.RMSprop(learning_rate=args.learning_rate),
              metrics=['accuracy'])


class LogRunMetrics(keras.callbacks.Callback):
    """After each epoch: the run's Loss and Accuracy (validation), which HyperDrive's policy reads."""

    def on_epoch_end(self, epoch, logs=None):
        run.log('Loss', float(logs['val_loss']))
        run.log('Accuracy', float(logs['val_accuracy']))


history = model.fit(X_train, y_train_1h, batch_size=args.batch_size, epochs=args.n_epochs, verbose=2,
                    validation_data=(X_test, y_test_1h), callbacks=[LogRunMetrics()])
score = model.evaluate(X_test, y_test_1h, verbose=0)
run.log('Final test loss', float(score[0]))
run.log('Final test accuracy', float(score[1]))
print('Test loss:', score[0], 'test accuracy:', score[1])

plt.figure(figsize=(6, 3))
plt.title(f'MNIST with Keras MLP ({args.n_epochs} epochs)', fontsize=12)
plt.plot(history.history['loss'], 'b-', label='training loss', lw=2)
plt.plot(history.history['val_loss'], 'r--', label='validation loss', lw=2)
plt.xlabel('epoch')
plt.legend()
run.log_image('Loss curve', plot=plt)

os.makedirs('./outputs/model', exist_ok=True)
model.save('./outputs/model/model.keras')
print('model saved in ./outputs/model', flush=True)
