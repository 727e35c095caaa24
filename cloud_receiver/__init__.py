"""The cloud service that receives, recovers and serves images."""
